"""Builders and servers shared by the tests and the benchmarks; not part of the product.

``mails`` (mail as customers' clients write it), ``world`` (settings, a customer, cases),
``mail_samples`` (template contexts for every kind of mail) and ``servers`` (a private
Dovecot, a recording SMTP server). Not shipped in the wheel; the tests' fixtures that start
these servers are in ``tests/plugins/``."""
