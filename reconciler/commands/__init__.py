"""One module per ``recon`` command; ``reconciler.cli`` assembles them into the app."""
