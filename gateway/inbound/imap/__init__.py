"""The IMAP side: the interface the loop uses, the client, its wire syntax, an in-memory twin."""
