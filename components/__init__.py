"""Pulumi ComponentResources, one per concern. They take typed args built from the stack
config and consume the rendering layer; they never read ``pulumi.Config`` themselves."""
