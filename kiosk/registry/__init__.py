"""The central seat registry: accounts, catalogue, seats and the waiting list."""
