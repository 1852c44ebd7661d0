/*
 * lincae test gain: a tiny VST3 plugin for lincae's tests of VST3 chain loading (tests/test_vst3.py).
 *
 * Stereo in/out. Parameters: "Gain" (dB, -60..+12, default 0; pedalboard names it gain_db) and "Mute"
 * (a switch). One DPF state, "polarity" ("normal" or "inverted"), has no parameter: it can only be
 * changed by restoring a saved state (pedalboard's raw_state), so a test can tell that a state was
 * really restored. Built with the DISTRHO Plugin Framework (DPF) by ../build.sh.
 */
#include "DistrhoPlugin.hpp"

#include <cmath>
#include <cstring>

START_NAMESPACE_DISTRHO

class LincaeTestGain : public Plugin {
public:
    LincaeTestGain() : Plugin(kParamCount, 0, 1) {}

protected:
    enum { kGain, kMute, kParamCount };

    const char* getLabel() const override { return "lincae_test_gain"; }
    const char* getDescription() const override { return "Test plugin for lincae's VST3 chain loading."; }
    const char* getMaker() const override { return "lincae"; }
    const char* getLicense() const override { return "ISC"; }
    uint32_t getVersion() const override { return d_version(1, 0, 0); }
    int64_t getUniqueId() const override { return d_cconst('l', 'c', 't', 'g'); }

    void initAudioPort(bool input, uint32_t index, AudioPort& port) override {
        port.groupId = kPortGroupStereo;
        Plugin::initAudioPort(input, index, port);
    }

    void initParameter(uint32_t index, Parameter& p) override {
        p.hints = kParameterIsAutomatable;
        if (index == kGain) {
            p.name = "Gain";
            p.symbol = "gain";
            p.unit = "dB";
            p.ranges = ParameterRanges(0.0f, -60.0f, 12.0f);
        } else {
            p.hints |= kParameterIsBoolean;
            p.name = "Mute";
            p.symbol = "mute";
            p.ranges = ParameterRanges(0.0f, 0.0f, 1.0f);
            p.enumValues.count = 2;  // "Off"/"On" texts: pedalboard then reads it as a bool
            p.enumValues.restrictedMode = true;
            p.enumValues.values = new ParameterEnumerationValue[2];
            p.enumValues.values[0].label = "Off";
            p.enumValues.values[0].value = 0.0f;
            p.enumValues.values[1].label = "On";
            p.enumValues.values[1].value = 1.0f;
        }
    }

    void initState(uint32_t, State& state) override {
        state.key = "polarity";
        state.defaultValue = "normal";
        state.label = "Polarity";
    }

    float getParameterValue(uint32_t index) const override { return index == kGain ? fGainDb : fMute; }
    void setParameterValue(uint32_t index, float value) override { (index == kGain ? fGainDb : fMute) = value; }

    String getState(const char*) const override { return String(fInverted ? "inverted" : "normal"); }
    void setState(const char* key, const char* value) override {
        if (std::strcmp(key, "polarity") == 0)
            fInverted = std::strcmp(value, "inverted") == 0;
    }

    void run(const float** inputs, float** outputs, uint32_t frames) override {
        float g = fMute >= 0.5f ? 0.0f : std::pow(10.0f, fGainDb / 20.0f);
        if (fInverted)
            g = -g;
        for (uint32_t c = 0; c < 2; ++c)
            for (uint32_t i = 0; i < frames; ++i)
                outputs[c][i] = g * inputs[c][i];
    }

private:
    float fGainDb = 0.0f, fMute = 0.0f;
    bool fInverted = false;

    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(LincaeTestGain)
};

Plugin* createPlugin() { return new LincaeTestGain(); }

END_NAMESPACE_DISTRHO
