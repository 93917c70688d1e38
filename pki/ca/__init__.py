"""Pure certificate building blocks: keys, validity arithmetic, names, certificate/CRL/OCSP encoding.

No database and no policy loading here: the services feed these functions what policy and records say.
"""
