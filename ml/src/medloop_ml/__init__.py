"""medloop segmentation engine."""
