"""Custom actions of the shop assistant (run by `rasa run actions`)."""
from shop import logs

logs.configure()  # LOG_FORMAT=json: rasa-sdk has set up its log handler before it imports the actions
