# Sourced by the Makefile and scripts: defaults for every setting. Anything already set
# in the environment wins, so a real WhatsApp number is only a matter of exporting the
# WHATSAPP_* variables (see README, "Connect a real WhatsApp number").

export RASA_PORT="${RASA_PORT:-5005}"
export ACTIONS_PORT="${ACTIONS_PORT:-5055}"
export SIMULATOR_PORT="${SIMULATOR_PORT:-5100}"
# Where the channel's inbox writer receives webhooks itself, acknowledging them without
# waiting for Rasa's busy process (README, "Performance"). Set it empty to receive them
# on the Rasa port only.
export WHATSAPP_WEBHOOK_PORT="${WHATSAPP_WEBHOOK_PORT-5006}"
export RASA_ENDPOINTS="${RASA_ENDPOINTS:-endpoints.yml}"
export RASA_TELEMETRY_ENABLED="${RASA_TELEMETRY_ENABLED:-false}"
# The languages the shop offers (en de ru cs ka hy zh; any subset) and its default.
export SHOP_LANGUAGES="${SHOP_LANGUAGES:-en,de,ru,cs,ka,hy,zh}"
export SHOP_DEFAULT_LANGUAGE="${SHOP_DEFAULT_LANGUAGE:-en}"
export SQLALCHEMY_SILENCE_UBER_WARNING=1
# A clean start-up: the deprecation warnings dependencies print about themselves
# (TensorFlow/JAX, pkg_resources, pyparsing, SQLAlchemy, distutils...) are for their own
# maintainers, not for someone starting the bot. Errors and log lines still show;
# `PYTHONWARNINGS=default make run` shows every warning again.
export PYTHONWARNINGS="${PYTHONWARNINGS-ignore::DeprecationWarning,ignore::PendingDeprecationWarning,ignore::FutureWarning}"
# Trained models are kept here too, named by a fingerprint of everything that shapes them
# (data, config, domain, the project's own components, the lock file), so that a new clone
# on the same machine (CI's included) reuses a model trained from exactly the same inputs,
# as pip reuses a built wheel. SHOP_MODEL_CACHE= (empty) keeps models inside the checkout only.
export SHOP_MODEL_CACHE="${SHOP_MODEL_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/loop-and-thread/models}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"  # TensorFlow's C++ side: errors only
# Prometheus metrics (README, "Monitoring"): every process of this machine (Rasa workers,
# inbox writers, action server) counts into files here, and each one's /metrics answers
# the sum. `make run` empties it at start.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics}"

if [ -z "${WHATSAPP_ACCESS_TOKEN:-}" ]; then
  # Sandbox: the local simulator plays WhatsApp and the Graph API.
  export WHATSAPP_SANDBOX=1
  export WHATSAPP_ACCESS_TOKEN=sandbox-access-token
  export WHATSAPP_PHONE_NUMBER_ID="${WHATSAPP_PHONE_NUMBER_ID:-100000000000001}"
  export WHATSAPP_APP_SECRET="${WHATSAPP_APP_SECRET:-sandbox-app-secret}"
  export WHATSAPP_VERIFY_TOKEN="${WHATSAPP_VERIFY_TOKEN:-sandbox-verify-token}"
  export WHATSAPP_API_URL="${WHATSAPP_API_URL:-http://127.0.0.1:${SIMULATOR_PORT}}"
  # The WhatsApp Business Account whose message templates the simulator keeps.
  export WHATSAPP_BUSINESS_ACCOUNT_ID="${WHATSAPP_BUSINESS_ACCOUNT_ID:-100000000000002}"
  # The simulator also hosts placeholder product photos.
  export SHOP_IMAGE_BASE_URL="${SHOP_IMAGE_BASE_URL:-http://127.0.0.1:${SIMULATOR_PORT}/sim/images/}"
else
  export WHATSAPP_SANDBOX=0
fi
export WHATSAPP_API_VERSION="${WHATSAPP_API_VERSION:-v25.0}"
export WHATSAPP_API_URL="${WHATSAPP_API_URL:-https://graph.facebook.com}"
# The shop's order system signs its order updates with this (README, "Order updates"):
# the sandbox has a fixed one; a real shop sets its own (without it the endpoint answers 503).
if [ "$WHATSAPP_SANDBOX" = 1 ]; then
  export SHOP_WEBHOOK_SECRET="${SHOP_WEBHOOK_SECRET:-sandbox-shop-secret}"
fi
