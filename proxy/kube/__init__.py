"""Sources of Kubernetes objects (cluster watch, manifest files) and the object cache they feed."""
