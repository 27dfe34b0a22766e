"""The order lifecycle (its one writer), what is read about orders, and the order page."""
