"""Next-30-day spend: a regression model on the customer entity (see spec.py)."""
