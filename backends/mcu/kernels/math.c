/* Scalar helpers the elementwise templates call (a fragment pasted into model.c). */

//@ ff_sigmoidf
/* exp of a non-positive argument cannot overflow, for either sign of x */
static float ff_sigmoidf(float x)
{
    const float z = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + z) : z / (1.0f + z);
}

//@ ff_softplusf
/* log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), which cannot overflow */
static float ff_softplusf(float x)
{
    return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

//@ ff_maxf
/* a NaN in either operand wins, as in numpy's maximum */
static float ff_maxf(float a, float b)
{
    return a != a ? a : (b != b ? b : (a > b ? a : b));
}

//@ ff_minf
static float ff_minf(float a, float b)
{
    return a != a ? a : (b != b ? b : (a < b ? a : b));
}

//@ ff_modf
/* Python's %: the result takes the divisor's sign (fmodf takes the dividend's) */
static float ff_modf(float a, float b)
{
    float r = fmodf(a, b);
    if (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) r += b;
    return r;
}
