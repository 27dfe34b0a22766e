"""The merchant's back office, what an integrator deletes or puts behind a login: sign-in,
the order list, the Flex inspector and the demo tools."""
