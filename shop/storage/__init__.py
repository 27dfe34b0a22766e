"""The shop's database: connections, migrations, leases, and the Flex integration's tables."""
