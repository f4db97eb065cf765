using Sandbox.Native;
using static Sandbox.Native.LibCSupplement;

namespace Sandbox.Agent.Native;

/// <summary>
/// In the guest, the agent's helper processes (crun, modprobe) start with a fixed address layout (no address-space
/// randomization). Under TCG, QEMU finds the translation of guest code by its virtual address, so a program whose
/// libraries land at new random addresses in every process is translated anew each time: every crun command
/// re-translated crun and its ten libraries. With a fixed layout the second and later crun commands reuse the
/// translations: measured in a guest, crun create 85-120 -> ~40 ms, start 50-90 -> ~20 ms, delete 75 -> ~25 ms.
/// Container processes keep randomization: the agent gives every container spec a linux.personality
/// (<see cref="Containers.OciSpecRewriter"/>), and crun sets it before it executes a container process.
/// The flag (ADDR_NO_RANDOMIZE) belongs to a thread and is inherited by what it starts, so <see cref="ChildProcesses"/>
/// sets it on the thread that spawns, right before it spawns.
/// </summary>
public static class HelperAddressLayout
{
    private static volatile bool s_enabled;

    /// <summary>Whether children start with a fixed layout (set once, in the guest).</summary>
    public static bool Enabled => s_enabled;

    public static void Enable() => s_enabled = true;

    /// <summary>When enabled, makes what the calling thread executes from now on use a fixed layout. A failure is
    /// logged once and turns the fixed layout off (children are then randomized, only slower).</summary>
    public static void ApplyToCallingThread()
    {
        if (!s_enabled) return;
        int current = personality(PERSONALITY_QUERY);
        if (current >= 0 && (current & ADDR_NO_RANDOMIZE) != 0) return;
        if (current < 0 || personality((uint)current | ADDR_NO_RANDOMIZE) < 0)
        {
            s_enabled = false;
            AgentLog.Write($"crun and modprobe run with a randomized address layout (slower under TCG): personality(ADDR_NO_RANDOMIZE) failed: {Errno.DescribeLast()}");
        }
    }
}
