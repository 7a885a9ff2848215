"""The web layer's pieces without a server: who a token is (web/auth.py), what each role
may do, the admin token, and static file names that try to leave their folder."""
import pytest

from shop import agents
from web import auth, static_files


def test_tokens_name_users_with_their_roles(sqlite_db):
    sam = sqlite_db.transaction(agents.add, "Sam", ["returns"])
    mia = sqlite_db.transaction(agents.add, "Mia", ["sales"], None, agents.MARKETING)
    admin = "a" * 24
    found = {t: sqlite_db.reading(auth.identify, t, admin) for t in (sam, mia, admin, "nope", "", None)}
    assert found[sam] == auth.User("Sam", "agent", ("returns",))
    assert found[mia] == auth.User("Mia", "marketing", ("sales",))
    assert found[admin] == auth.User("admin", "admin", ("*",))
    assert found["nope"] is None and found[""] is None and found[None] is None
    # Changing an agent's role takes effect with the same name.
    sqlite_db.transaction(agents.add, "Sam", ["returns"], sam, agents.ADMIN)
    assert sqlite_db.reading(auth.identify, sam, None).role == "admin"
    with pytest.raises(ValueError, match="unknown role"):
        sqlite_db.transaction(agents.add, "Bo", ["x"], None, "boss")


def test_roles_grow_and_admins_serve_every_label():
    agent, marketer, admin = (auth.User("a", r, ("returns",)) for r in ("agent", "marketing", "admin"))
    assert [u.has(auth.MARKETING) for u in (agent, marketer, admin)] == [False, True, True]
    assert [u.has(auth.AGENT) for u in (agent, marketer, admin)] == [True, True, True]
    assert [u.has(auth.ADMIN) for u in (agent, marketer, admin)] == [False, False, True]
    assert not agent.serves("sales") and agent.serves("returns") and admin.serves("sales")
    assert admin.agent.serves("anything") and not marketer.agent.serves("sales")


def test_a_short_admin_token_is_no_token():
    assert auth.admin_token({"SHOP_ADMIN_TOKEN": "short"}) is None
    assert auth.admin_token({"SHOP_ADMIN_TOKEN": " " + "x" * 16 + " "}) == "x" * 16
    assert auth.admin_token({}) is None


@pytest.mark.parametrize("name", ["../auth.py", "../../web/auth.py", "/etc/passwd", "desk/../../auth.py", "", ".",
                                  "a//b", "..\\auth.py", "nope.css"])
def test_static_names_stay_inside_their_folders(name):
    assert static_files.find((static_files.ROOT / "desk", static_files.COMMON), name) is None


def test_static_files_are_found_in_the_page_folder_then_the_common_one():
    folders = (static_files.ROOT / "campaigns", static_files.COMMON)
    assert static_files.find(folders, "app.js") == static_files.ROOT / "campaigns" / "app.js"
    assert static_files.find(folders, "common.css") == static_files.COMMON / "common.css"
