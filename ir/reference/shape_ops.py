"""TODO"""
import numpy as np

from ..op import Op
from .registry import reference
