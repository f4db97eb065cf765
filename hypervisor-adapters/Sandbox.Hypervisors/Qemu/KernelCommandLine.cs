namespace Sandbox.Hypervisors.Qemu;

/// <summary>The guest kernel command line the adapter passes with -append.</summary>
public static class KernelCommandLine
{
    /// <param name="acceleration">Kvm or Tcg. Under TCG the guest gets the host TSC rate (microvm has nothing to
    /// calibrate the TSC against and hangs without it) and is told to trust the TSC.</param>
    /// <param name="tscKHz">Host TSC in kHz; required for Tcg on microvm, optional otherwise.</param>
    /// <param name="debug">Keep the kernel's console output (no `quiet`).</param>
    /// <param name="extra">Appended last, so it can override the adapter's own values.</param>
    public static string Build(Acceleration acceleration, long? tscKHz, bool debug, string? extra)
    {
        var parts = new List<string> { "console=ttyS0" };
        if (!debug)
            parts.Add("quiet");
        // rodata=off: skips the read-only remapping pass (slow under TCG); cryptomgr.notests: skips crypto self-tests;
        // panic=-1 + reboot=k with QEMU's -no-reboot: a guest panic ends the VM instead of hanging it.
        parts.AddRange(["rodata=off", "cryptomgr.notests", "panic=-1", "reboot=k"]);
        if (acceleration == Acceleration.Tcg)
        {
            if (tscKHz is not null)
                parts.Add($"tsc_early_khz={tscKHz}");
            parts.AddRange(["no_timer_check", "tsc=reliable"]);
        }
        if (!string.IsNullOrWhiteSpace(extra))
            parts.Add(extra.Trim());
        return string.Join(' ', parts);
    }
}
