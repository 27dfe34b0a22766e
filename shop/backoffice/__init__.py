"""What an integrator deletes or puts behind a login: sign-in, the inspector, demo tools."""
