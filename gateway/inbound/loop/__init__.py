"""The loop over a mailbox: rounds, batches, the inbound rows, the parse workers."""
