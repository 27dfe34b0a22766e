"""The sandbox's HTTP views, one Blueprint per area."""
