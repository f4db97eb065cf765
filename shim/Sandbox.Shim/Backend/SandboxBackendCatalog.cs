namespace Sandbox.Shim.Backend;

/// <summary>
/// Chooses the backend by SANDBOX_SHIM_BACKEND. The shipped shim has one: "vm" (or unset), containers in a VM. No
/// variable can make it run containers outside a VM: the runc backend, the tests' yardstick, exists only in the
/// test-only build tests/Sandbox.RuncYardstick, which <see cref="Add"/>s it before the shim starts.
/// </summary>
public static class SandboxBackendCatalog
{
    public const string Variable = "SANDBOX_SHIM_BACKEND";

    private static readonly List<ISandboxBackendFactory> Added = new();

    /// <summary>For a test build: one more backend, selected by its name.</summary>
    public static void Add(ISandboxBackendFactory factory)
    {
        lock (Added)
            Added.Add(factory);
    }

    public static ISandboxBackendFactory Select() => Select(Environment.GetEnvironmentVariable(Variable));

    public static ISandboxBackendFactory Select(string? name)
    {
        if (name is null or "" or "vm")
            return new VmBackendFactory();
        lock (Added)
        {
            if (Added.FirstOrDefault(f => f.Name == name) is { } added)
                return added;
        }
        throw new InvalidOperationException(name == "runc"
            ? $"{Variable}=runc: this shim runs containers only in VMs; the runc backend is a test-only yardstick " +
              "(tests/Sandbox.RuncYardstick) and is not part of containerd-shim-sandbox-v2. Remove the variable from containerd's environment"
            : $"{Variable}={name} names no backend: use \"vm\" (the default)");
    }
}
