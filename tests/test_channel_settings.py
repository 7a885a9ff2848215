"""The channel's settings from credentials.yml."""
import pytest
from rasa.shared.exceptions import RasaException

from connectors.whatsapp import WhatsAppSettings

REQUIRED = {"access_token": "t", "phone_number_id": "1", "app_secret": "s", "verify_token": "v"}


def test_missing_keys_name_their_environment_variables():
    with pytest.raises(RasaException, match="WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN"):
        WhatsAppSettings.from_credentials({"access_token": "t", "phone_number_id": "1", "app_secret": " "})


@pytest.mark.parametrize("value, port", [("", None), (None, None), ("5006", 5006), (5007, 5007)])
def test_the_webhook_port_is_optional(value, port):
    settings = WhatsAppSettings.from_credentials({**REQUIRED, "webhook_port": value})
    assert (settings.webhook_port, settings.webhook_host) == (port, "0.0.0.0")


@pytest.mark.parametrize("value", ["50o6", "0", "70000", "-1"])
def test_a_webhook_port_that_is_no_port_is_refused(value):
    with pytest.raises(RasaException, match="webhook_port must be a TCP port number"):
        WhatsAppSettings.from_credentials({**REQUIRED, "webhook_port": value})
