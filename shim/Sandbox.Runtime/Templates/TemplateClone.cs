using Sandbox.Hypervisors;
using Sandbox.Hypervisors.Templates;

namespace Sandbox.Runtime.Templates;

/// <summary>What a sandbox VM starts from when it is cloned: the template and the sealed memory this process holds
/// for it (from <see cref="TemplateMemoryHolders.Acquire"/>). The sandbox releases the memory when it ends.</summary>
public sealed record TemplateClone(VmTemplate Template, SealedTemplateMemory Memory, bool MemoryShared)
{
    public VmTemplateRole Role => new VmTemplateRole.CloneOf(Template.StateFile, Memory.Descriptor) { MemoryReady = Memory.Sealed };

    /// <summary>One line for logs and `sandboxctl list`.</summary>
    public string Describe() =>
        $"cloned from template {Template.Key[..16]} ({(MemoryShared ? "memory shared with other clones" : "memory copied from the template")})";

    public void Release() => TemplateMemoryHolders.Release(Template, Memory);
}
