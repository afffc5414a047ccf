"""The control vantage: the same measurement, taken from an uncensored network.

A measurement alone cannot say "blocked" (the site may be down for everyone).  Like
OONI's test helper, the control helper measures the same URL at the same moment from
a network without censorship, and the verdict compares the two.
"""
