"""Ray Serve application `generation`; the Serve config refers to `lorag.generation.deployment:app`."""

from lorag.serving import deployment_for

app = deployment_for("generation").bind()
