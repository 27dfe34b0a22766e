"""From catalog to payment: the storefront pages, the cart, the processor, the CIT checkout."""
