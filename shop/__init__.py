"""The merchant's side, simulated: the storefront and checkout, orders and their lifecycle,
Flex's webhooks, recovery, the back office and the database, one package each."""
