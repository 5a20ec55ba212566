"""Notices to customers' distribution lists (guide 7, 10, 11.4): the lists, planned and
emergency maintenance, incidents, advisories, and the availability report."""
