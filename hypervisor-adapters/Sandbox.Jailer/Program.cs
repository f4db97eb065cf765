using Sandbox.Hypervisors.Jail;
using Sandbox.Jailer;

// sandbox-jailer [options] -- PROGRAM ARGS: see JailOptions. Every step runs on this one thread, in this order, and the
// process becomes PROGRAM (same pid) or exits non-zero with one line on stderr saying what failed.
JailOptions options;
try
{
    options = JailOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"sandbox-jailer: {e.Message}");
    return 2;
}

try
{
    if (options.NetworkNamespacePath is { } netns)
        NetworkNamespaceEntry.Enter(netns);
    TapOpener.Open(options.Taps);
    JailRootBuilder.Enter(options);
    ResourceLimits.Apply(options.Limits);
    CapabilityDrop.KeepOnly(options.KeptCapabilities);
    SeccompInstaller.Install(SeccompDenyFilter.Build(Environment.ProcessId, options.UnixSocketsOnly, options.RefuseSetIdModes));
    ProgramExec.Exec(options.Program, options.Arguments);
    return 127; // not reached: Exec returns only by throwing
}
catch (JailException e)
{
    Console.Error.WriteLine($"sandbox-jailer: cannot start {options.Program}: {e.Message}");
    return 1;
}
