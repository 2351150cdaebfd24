"""Runtime shared by every lorag service: settings, errors, tenancy, RPC plumbing, hosts."""
