/* The generated model's API under neutral names, for the harness programs. The build says
 * which model and prefix: -DMODEL_HEADER='"ecg_int8.h"' -DMODEL_PREFIX=ecg -DMODEL_PREFIX_UPPER=ECG
 * makes model_init() ecg_init() and MODEL_N_CLASSES ECG_N_CLASSES. */
#ifndef MODEL_API_H_
#define MODEL_API_H_

#include MODEL_HEADER

#define MODEL_CAT_(a, b) a##b
#define MODEL_CAT(a, b) MODEL_CAT_(a, b)
#define MODEL_FN(name) MODEL_CAT(MODEL_PREFIX, MODEL_CAT(_, name))
#define MODEL_VALUE(name) MODEL_CAT(MODEL_PREFIX_UPPER, MODEL_CAT(_, name))

#define model_state_t MODEL_FN(state_t)
#define model_filter_t MODEL_FN(filter_t)
#define model_model MODEL_FN(model)
#define model_check MODEL_FN(check)
#define model_init MODEL_FN(init)
#define model_push MODEL_FN(push)
#define model_decision MODEL_FN(decision)
#define model_filter_init MODEL_FN(filter_init)
#define model_filter_push MODEL_FN(filter_push)

#define MODEL_N_CHANNELS MODEL_VALUE(N_CHANNELS)
#define MODEL_N_STEPS MODEL_VALUE(N_STEPS)
#define MODEL_N_SIDE MODEL_VALUE(N_SIDE)
#define MODEL_N_CLASSES MODEL_VALUE(N_CLASSES)
#define MODEL_N_STATE MODEL_VALUE(N_STATE)
#define MODEL_FILTER_SECTIONS MODEL_VALUE(FILTER_SECTIONS)
#define MODEL_DECIMATE MODEL_VALUE(DECIMATE)

#endif /* MODEL_API_H_ */
