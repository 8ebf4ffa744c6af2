"""All losses, as flat pure functions of network outputs. One submodule per method family."""
from lsgan.losses.gan import *  # noqa: F401,F403
from lsgan.losses.gan import ADVERSARIAL  # noqa: F401
from lsgan.losses.coupled import *  # noqa: F401,F403
from lsgan.losses.clustergan import *  # noqa: F401,F403
from lsgan.losses.nemgan import *  # noqa: F401,F403
from lsgan.losses.slcgan import *  # noqa: F401,F403
from lsgan.losses.diversity import *  # noqa: F401,F403
from lsgan.losses.clustering import *  # noqa: F401,F403
