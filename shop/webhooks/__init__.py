"""Flex's signed webhooks: the receiver, the event store, and what each event does."""
