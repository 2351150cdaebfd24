"""Ray Serve application `adapters`; the Serve config refers to `lorag.adapters.deployment:app`."""

from lorag.serving import deployment_for

app = deployment_for("adapters").bind()
