using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>Finds the sandbox an operator names: by its sandbox id (for a CRI pod, the pod sandbox id; for `ctr run`,
/// the container id), or by the id of a container in it (a directory of its share, or one its events name: a
/// container that failed and was removed).</summary>
public static class SandboxLookup
{
    public static SandboxStateDirectory? Find(string stateRoot, string id)
    {
        var sandboxes = SandboxStateDirectory.List(stateRoot).ToList();
        return sandboxes.FirstOrDefault(s => s.SandboxId == id)
               ?? sandboxes.FirstOrDefault(s => !id.Contains('/') && id is not ("." or "..") &&
                                                Directory.Exists(Path.Combine(s.SharedDirectory, id, "rootfs")))
               ?? sandboxes.FirstOrDefault(s => SandboxEventLog.Read(s.Path).Any(e => e.ContainerId == id));
    }
}
