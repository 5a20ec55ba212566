"""case-gateway: the email side of a customer-care case system."""

__version__ = "0.1.0"
