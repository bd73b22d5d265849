/* Activations a Linear applies after its GEMM, one function each so Linear can take a
   pointer to the one it needs (a fragment pasted into model.c). */

//@ ff_act_relu
static float ff_act_relu(float x) { return x < 0.0f ? 0.0f : x; }

//@ ff_act_gelu
/* 0.5 x (1 + erf(x / sqrt(2))); the constant is 1/sqrt(2) */
static float ff_act_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0x1.6a09e6p-1f)); }

//@ ff_act_gelu_tanh
/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static float ff_act_gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanhf(0x1.988454p-1f * (x + 0x1.6e4e26p-5f * x * x * x)));
}

//@ ff_act_silu needs ff_sigmoidf
static float ff_act_silu(float x) { return x * ff_sigmoidf(x); }

//@ ff_act_sigmoid needs ff_sigmoidf
static float ff_act_sigmoid(float x) { return ff_sigmoidf(x); }

//@ ff_act_tanh
static float ff_act_tanh(float x) { return tanhf(x); }
