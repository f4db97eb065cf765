using Sandbox.Shim.Backend;

namespace Sandbox.RuncYardstick;

/// <summary>containerd-shim-yardstick-v2: the shipped shim's entry point, with the runc backend added to its catalog
/// (selected by SANDBOX_SHIM_BACKEND=runc, as before it left the product).</summary>
public static class Program
{
    public static Task<int> Main(string[] args)
    {
        SandboxBackendCatalog.Add(new HostRuncBackendFactory());
        return Sandbox.Shim.Program.Main(args);
    }
}
