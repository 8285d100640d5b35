"""Outgoing email: composing paygate's messages and the SMTP transport that sends them."""
