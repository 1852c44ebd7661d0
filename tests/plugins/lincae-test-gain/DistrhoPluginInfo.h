/*
 * lincae test gain: a tiny VST3 plugin for lincae's tests of VST3 chain loading (tests/test_vst3.py).
 * Built with the DISTRHO Plugin Framework (DPF) by ../build.sh; not meant for anything else.
 */
#ifndef DISTRHO_PLUGIN_INFO_H_INCLUDED
#define DISTRHO_PLUGIN_INFO_H_INCLUDED

#define DISTRHO_PLUGIN_BRAND "lincae"
#define DISTRHO_PLUGIN_NAME  "lincae test gain"
#define DISTRHO_PLUGIN_URI   "urn:lincae:test-gain"

#define DISTRHO_PLUGIN_HAS_UI          0
#define DISTRHO_PLUGIN_IS_RT_SAFE      1
#define DISTRHO_PLUGIN_NUM_INPUTS      2
#define DISTRHO_PLUGIN_NUM_OUTPUTS     2
#define DISTRHO_PLUGIN_WANT_STATE      1
#define DISTRHO_PLUGIN_WANT_FULL_STATE 1  // the host's saved state asks the plugin for its current state
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Tools"

#endif
