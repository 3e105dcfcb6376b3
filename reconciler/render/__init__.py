"""Plan and drift output: text for terminals, JSON for machines."""
