"""`python -m shop campaign ...`: the operator's commands for template campaigns
(argument parsing and printing; the logic is shop.campaigns, the sending the sender
process, marketing/sender.py).

    python -m shop campaign create --name dec-sale --template winter_sale \\
        --params '{"1": "{profile_name|there}", "2": "20%"}' --labels vip,newsletter \\
        [--all-labels] [--exclude-labels staff] [--wrote-within-days 90] [--at "2026-12-05 10:00"]
    python -m shop campaign preview|start|pause|resume|cancel dec-sale
    python -m shop campaign status dec-sale [--follow]
    python -m shop campaign list
"""
import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import Any, Dict, Optional
from zoneinfo import ZoneInfo

from shop import campaigns
from shop.db import get_database

# `stats NAME [--csv]` (delivery statistics per campaign) is registered by its own module
# when it exists: STATS_HOOK is called with the sub-parsers.
STATS_HOOK = "shop.campaign_stats"


def shop_timezone() -> dt.tzinfo:
    zone = os.environ.get("SHOP_TIMEZONE")
    if zone:
        return ZoneInfo(zone)
    from shop.facts import load_facts

    return load_facts().timezone


def parse_at(text: str, timezone: dt.tzinfo, now: float) -> float:
    """"2026-12-05 10:00" in the shop's time zone -> UTC seconds (must be in the future)."""
    try:
        local = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise campaigns.CampaignError(f'--at must look like "2026-12-05 10:00", got {text!r}') from None
    at = (local if local.tzinfo else local.replace(tzinfo=timezone)).timestamp()
    if at <= now:
        raise campaigns.CampaignError(f"--at {text!r} is in the past (shop time zone {timezone})")
    return at


def _when(at: Optional[float], timezone: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(at, timezone).strftime("%Y-%m-%d %H:%M %Z") if at else "-"


def _hooks() -> Dict[str, Any]:
    return campaigns.shop_hooks(os.environ.get("SHOP_DEFAULT_LANGUAGE") or "en")


def create(args: argparse.Namespace) -> int:
    from shop import audiences

    db = get_database()
    now = time.time()
    try:
        params = json.loads(args.params or "{}")
    except ValueError as error:
        raise campaigns.CampaignError(f"--params is not JSON: {error}") from None
    labels = tuple(x.strip() for x in (args.labels or "").split(",") if x.strip())
    excluded = tuple(x.strip() for x in (args.exclude_labels or "").split(",") if x.strip())
    try:
        spec = audiences.AudienceSpec(labels=labels, match_all=args.all_labels, exclude_labels=excluded,
                                      wrote_within_days=args.wrote_within_days)
    except ValueError as error:
        raise campaigns.CampaignError(str(error)) from None
    hooks = _hooks()
    category = db.reading(hooks["category_of"], args.template)
    if category is None:
        raise campaigns.CampaignError(
            f"template {args.template!r} is not approved in the shop's default language (templates.yml and "
            "`python -m shop templates sync`)")
    db.reading(hooks["check"], args.template, campaigns.check_params(params))
    at = parse_at(args.at, shop_timezone(), now) if args.at else None
    campaign = db.transaction(campaigns.create, args.name, args.template, category, params, json.loads(spec.to_json()), at, now)
    print(f"campaign {campaign.name}: {campaign.state}, template {campaign.template} ({category})"
          + (f", starts {_when(at, shop_timezone())}" if at else "; `start` it when ready (see `preview` first)"))
    return 0


def preview(args: argparse.Namespace) -> int:
    from shop import audiences, ratecard

    db = get_database()
    campaign = db.reading(campaigns.get, args.name)
    if campaign is None:
        raise campaigns.CampaignError(f"no campaign named {args.name!r}")
    spec = audiences.AudienceSpec.from_json(json.dumps(campaign.audience))
    shown = db.reading(audiences.preview, spec, campaign.category, time.time(), ratecard.load())
    print(f"campaign {campaign.name} ({campaign.template}, {campaign.category}): {shown.size} recipients")
    for reason, count in sorted(shown.excluded.items()):
        print(f"  excluded, {reason}: {count}")
    for sample in shown.sample:
        print(f"  e.g. {sample.name or '(no name)'} {sample.masked}")
    print("  estimated cost (all delivered): " + ", ".join(f"{v} {k}" for k, v in shown.estimated_cost.items()))
    return 0


def start(args: argparse.Namespace) -> int:
    hooks = _hooks()
    campaign = get_database().transaction(campaigns.start, args.name, time.time(), hooks["select"], hooks["pick"])
    excluded = ", ".join(f"{n} {r}" for r, n in sorted(campaign.excluded.items())) or "none"
    print(f"campaign {campaign.name}: {campaign.state}, {campaign.recipients} recipients queued (excluded: {excluded}); "
          "the sender process (python -m marketing.sender) sends them")
    return 0


def change(args: argparse.Namespace) -> int:
    db = get_database()
    if args.action == "pause":
        campaign = db.transaction(campaigns.pause, args.name)
    elif args.action == "resume":
        campaign = db.transaction(campaigns.resume, args.name)
    else:
        campaign = db.transaction(campaigns.cancel, args.name)
    print(f"campaign {campaign.name}: {campaign.state}")
    return 0


def _line(progress: campaigns.Progress) -> str:
    c = progress.campaign
    states = ", ".join(f"{progress.states.get(s, 0)} {s}" for s in campaigns.SEND_STATES if progress.states.get(s))
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(progress.statuses.items()))
    return f"{c.name}: {c.state}{f' ({c.reason})' if c.reason else ''}; {states or 'no rows yet'}" + (
        f"; statuses: {statuses}" if statuses else "")


def status(args: argparse.Namespace) -> int:
    db = get_database()
    progress = db.reading(campaigns.progress, args.name)
    if not args.follow:
        print(_line(progress))
        return 0
    from tqdm import tqdm  # installed with Rasa

    with tqdm(total=progress.total, desc=args.name, unit="msg") as bar:
        while True:
            bar.total = progress.total
            bar.n = progress.finished
            bar.set_postfix_str(f"{progress.campaign.state}, sent {progress.states.get(campaigns.SENT, 0)}")
            bar.refresh()
            if progress.campaign.state in (campaigns.DONE, campaigns.CANCELLED) or (
                    progress.campaign.state == campaigns.PAUSED and args.until_paused):
                break
            time.sleep(args.interval)  # a progress display's refresh, not synchronisation
            progress = db.reading(campaigns.progress, args.name)
    print(_line(progress))
    return 0


def show_list(args: argparse.Namespace) -> int:
    zone = shop_timezone()
    for campaign in get_database().reading(campaigns.all_campaigns):
        print(f"{campaign.name:<24} {campaign.state:<10} {campaign.template:<24} {campaign.recipients or 0:>7} recipients  "
              f"created {_when(campaign.created_at, zone)}  at {_when(campaign.at, zone)}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return int(args.campaign_run(args))
    except (campaigns.CampaignError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def add_parser(commands: Any) -> None:
    """Registers `campaign` and its actions on `python -m shop`'s sub-parsers."""
    p = commands.add_parser("campaign", help="template campaigns: create, preview, start, pause, resume, cancel, status, list")
    actions = p.add_subparsers(dest="campaign_action", required=True)
    c = actions.add_parser("create", help="a new campaign (draft, or scheduled with --at)")
    c.add_argument("--name", required=True)
    c.add_argument("--template", required=True, help="an approved template's name")
    c.add_argument("--params", default="{}", help='JSON: {"1": "{profile_name|there}", "2": "20%%"}')
    c.add_argument("--labels", default="", help="contacts with any of these labels (comma-separated; none: everyone)")
    c.add_argument("--all-labels", action="store_true", help="contacts with all of --labels")
    c.add_argument("--exclude-labels", default="", help="leave out contacts with any of these labels")
    c.add_argument("--wrote-within-days", type=int, help="only contacts who wrote within N days")
    c.add_argument("--at", help='start time in the shop\'s time zone, "2026-12-05 10:00"')
    c.set_defaults(run=run, campaign_run=create)
    for action, helptext, function in (
        ("preview", "audience size, exclusions per reason, samples and estimated cost", preview),
        ("start", "queue one message per recipient now; the sender sends them", start),
        ("pause", "stop sending (within a second)", change),
        ("resume", "continue a paused campaign", change),
        ("cancel", "send nothing more", change),
    ):
        a = actions.add_parser(action, help=helptext)
        a.add_argument("name")
        a.set_defaults(run=run, campaign_run=function, action=action)
    s = actions.add_parser("status", help="rows per state and delivery statuses")
    s.add_argument("name")
    s.add_argument("--follow", action="store_true", help="a progress bar until the campaign is done or cancelled")
    s.add_argument("--until-paused", action="store_true", help="with --follow: stop following when it is paused")
    s.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    s.set_defaults(run=run, campaign_run=status)
    ls = actions.add_parser("list", help="every campaign")
    ls.set_defaults(run=run, campaign_run=show_list)
    try:
        import importlib

        importlib.import_module(STATS_HOOK).add_parser(actions)
    except ModuleNotFoundError:
        pass
