"""`make seal`, `make rotate-fernet` and `make stamp` (scripts/seal.py), and copy-time sealing
(hooks/sealing.py imports crypto, rules and plaintext): one implementation.

    crypto     the controller's certificate, scopes and ciphertext format (HybridEncrypt)
    rules      what each plaintext must be (Fernet keys, passwords the chart and AWS accept)
    plaintext  where each value comes from: environment, generated, or a hidden prompt
    files      the edits of the SealedSecret files (round-trip YAML, nothing half-written)
    cli        the commands and their output
"""
