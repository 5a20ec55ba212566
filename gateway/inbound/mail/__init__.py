"""What the parse workers make of a message's bytes: no database, no IMAP, no templates."""
