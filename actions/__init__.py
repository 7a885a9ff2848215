"""Custom actions of the shop assistant (run by `rasa run actions`)."""
