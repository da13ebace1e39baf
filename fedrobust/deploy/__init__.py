"""Edge deployment: credentials, a local TLS federation, and model export for devices."""
