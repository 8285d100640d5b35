"""What api/ and web/ share: request plumbing and schemas."""
