"""SGD near a minimum: its stationary law, the chains that test it, and how far the cloud
reaches."""
