"""The merchant's own systems, simulated: catalog, cart, order store, processor, pages."""
