"""medloop segmentation engine."""

import os

# Under CPU contention (several processes on few cores) OpenMP workers that spin while waiting
# burn the time slices their siblings need: a 2-thread training step measured 8x slower than
# with passive waiting. libgomp reads this once when torch loads, so it is set before any
# module of the package imports torch; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
