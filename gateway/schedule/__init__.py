"""Timed work: business-day calendars, the follow-up timer, and the one scheduler loop."""
