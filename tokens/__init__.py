"""PKCS#11 (PyKCS11): tokens and HSMs. Keys generated on the token stay there; signing goes through
key classes that *are* cryptography private keys, so certificate, CSR, CRL and OCSP code never knows."""
