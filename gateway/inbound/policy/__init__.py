"""One inbound message decided: the stages, applying it to a case, the answers, the lookups."""
