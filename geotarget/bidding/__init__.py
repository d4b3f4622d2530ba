"""Bidding on exchanges (OpenRTB 2.6): a bid request read as a ping (its position and how far to trust it, its
device, its consent signals), answered through the serving path's matcher, ranking and caps, with a creative per
impression slot and signed win, billing and loss notices that settle the cap slot a bid holds."""
