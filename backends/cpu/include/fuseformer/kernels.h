// Everything a generated model includes.
#pragma once

#include "core.h"
#include "vmath.h"
#include "elementwise.h"
#include "layout.h"
#include "reduce.h"
#include "norm.h"
#include "packed_gemm.h"
#include "attention.h"
#include "conv.h"
